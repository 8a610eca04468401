"""Random primary keys for contributions (config/ids.py): ids owners see leak no counts."""

import config.ids
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='contribution',
            name='id',
            field=models.BigIntegerField(default=config.ids.random_id, editable=False, primary_key=True, serialize=False),
        ),
    ]
