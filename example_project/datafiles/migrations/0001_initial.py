import django.db.models.deletion
from django.db import migrations, models

import datafiles.models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="DataFile",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("file", models.FileField(upload_to=datafiles.models.upload_to)),
                ("year", models.PositiveSmallIntegerField()),
                (
                    "quarter",
                    models.PositiveSmallIntegerField(
                        choices=[(1, "Q1"), (2, "Q2"), (3, "Q3"), (4, "Q4")]
                    ),
                ),
                ("section", models.CharField(max_length=40)),
                ("uploaded_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["-year", "-quarter", "section", "-uploaded_at"],
            },
        ),
        migrations.CreateModel(
            name="ParseRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("task_id", models.CharField(max_length=255, unique=True)),
                ("reparse_id", models.PositiveIntegerField(blank=True, null=True)),
                ("state", models.CharField(default="PENDING", max_length=20)),
                ("log_status", models.CharField(blank=True, max_length=20)),
                ("log_storage", models.CharField(blank=True, max_length=100)),
                ("log_uri", models.CharField(blank=True, max_length=1024)),
                ("log_key", models.CharField(blank=True, max_length=1024)),
                ("log_bytes", models.PositiveBigIntegerField(blank=True, null=True)),
                ("warnings", models.PositiveIntegerField(default=0)),
                ("errors", models.PositiveIntegerField(default=0)),
                ("submitted_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "data_file",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="parse_runs",
                        to="datafiles.datafile",
                    ),
                ),
            ],
            options={
                "ordering": ["-submitted_at"],
            },
        ),
    ]
