"""The payout ledger (reversals and corrections, one active payout per owner and round) and random ids."""

import config.ids
import valuation.db_guards
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0002_random_ids'),
        ('valuation', '0007_round_tasks'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='payout',
            name='payout_one_per_owner_round',
        ),
        migrations.AddField(
            model_name='payout',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='payout',
            name='kind',
            field=models.CharField(choices=[('payout', 'payout'), ('reversal', 'reversal')], default='payout', max_length=8),
        ),
        migrations.AddField(
            model_name='payout',
            name='reason',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='payout',
            name='replaces',
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='replacement', to='valuation.payout'),
        ),
        migrations.AddField(
            model_name='payout',
            name='reverses',
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='reversal', to='valuation.payout'),
        ),
        migrations.AlterField(
            model_name='fidelityreport',
            name='id',
            field=models.BigIntegerField(default=config.ids.random_id, editable=False, primary_key=True, serialize=False),
        ),
        migrations.AlterField(
            model_name='valuationround',
            name='id',
            field=models.BigIntegerField(default=config.ids.random_id, editable=False, primary_key=True, serialize=False),
        ),
        migrations.AddConstraint(
            model_name='payout',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'payout'), ('replaces__isnull', True)), fields=('round', 'owner'), name='payout_one_original_per_owner_round'),
        ),
        migrations.AddConstraint(
            model_name='payout',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('amount__gte', 0), ('kind', 'payout'), ('reverses__isnull', True)), models.Q(('amount__lte', 0), ('kind', 'reversal'), ('replaces__isnull', True), ('reverses__isnull', False), ('status', 'approved')), _connector='OR'), name='payout_kind_links'),
        ),
        # Approved entries immutable, links checked, in the database itself (valuation/db_guards.py).
        migrations.RunPython(valuation.db_guards.install, valuation.db_guards.drop),
    ]
