"""A package whose task module only autodiscovery imports, as in a Django project."""
