"""Random primary keys for preference pairs (config/ids.py): owners see pair ids in pair values.

Pairs stored before keep their ids (those were already shown, and every reference to them — pair values,
cluster proxies — stays valid); every new pair gets a random one. The column stays a BIGINT, so foreign
keys to pairs keep their type on SQLite and PostgreSQL alike.
"""

import config.ids
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0005_near_duplicate_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='preferencepair',
            name='id',
            field=models.BigIntegerField(default=config.ids.random_id, editable=False, primary_key=True, serialize=False),
        ),
    ]
