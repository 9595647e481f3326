"""A task module that cannot be imported, as after a bad merge."""

raise RuntimeError("this task module is broken")
