from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="automationrun",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["integration", "email", "received_at"],
                name="automation_pending_contact",
            ),
        ),
    ]
