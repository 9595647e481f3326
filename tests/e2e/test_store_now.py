"""End to end: “Store now” in the admin asks a real worker, through Celery's remote
control, to store a log whose upload failed while S3 was down."""

from __future__ import annotations

import socket
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from celery_parselog import log_info
from celery_parselog.admin import TaskLogAdmin
from tests.e2e.conftest import (
    BUCKET,
    StoppableS3,
    parse_while_s3_is_down,
    s3_client,
    spool_contents,
)
from tests.e2e.test_nothing_lost import PARSE
from tests.unit.runs import final_entry, pending_entry, record_finished, record_started


@pytest.mark.e2e
@pytest.mark.django_db
def test_store_now_has_the_worker_store_a_log_whose_upload_failed(
    start_worker: Any, stoppable_s3: StoppableS3
) -> None:
    """S3 down at upload: the log waits in the spool; once S3 is back, the admin action
    asks the worker of that host, which stores it at once and says so."""
    # The worker sweeps only at start: nothing but "Store now" stores the log.
    worker, result = parse_while_s3_is_down(start_worker, stoppable_s3, 67)
    failed = log_info(result, wait=10)
    assert failed is not None and failed.status == "failed"
    stoppable_s3.start()

    # The admin's own row of the run, as the worker wrote it in its database.
    record_started(
        pending_entry(result.id, key=failed.key),
        task_name=PARSE,
        hostname=socket.gethostname(),
        arguments={"data_file_id": 67},
        args=[67],
        kwargs={},
    )
    row = record_finished(
        final_entry(result.id, key=failed.key, status="failed", error=str(failed.error)),
        first_error=None,
    )
    assert row is not None and not row.is_stored
    user = User.objects.create_user("operator", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="celery_parselog", codename="view_tasklog")
    )
    client = Client()
    client.force_login(user)
    with mock.patch.object(TaskLogAdmin, "celery_app", lambda self: worker.client):
        response = client.post(
            reverse("admin:celery_parselog_tasklog_changelist"),
            {"action": "store_now", "_selected_action": [str(row.pk)]},
        )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:celery_parselog_tasklog_change", args=[row.pk])
    said = [str(message) for message in get_messages(response.wsgi_request)]
    assert len(said) == 1, said
    assert said[0].startswith(f"{worker.name} stored 1 log ({failed.key})"), said
    assert spool_contents(worker) == []
    body = s3_client(stoppable_s3.endpoint).get_object(Bucket=BUCKET, Key=failed.key)["Body"]
    assert body.read()
    stored = log_info(result, wait=10)
    assert stored is not None and stored.status == "stored"
