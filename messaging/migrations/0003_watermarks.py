"""Delivery state moves from a receipt per message and recipient to one watermark per participant.

Each participant's `delivered_seq` becomes the longest run of messages from
seq 1 that its client had confirmed (its own messages count as held), and
never less than its read watermark. Then the receipts and the stored
aggregate status go: a message's status is worked out from watermarks.
"""

from django.db import migrations, models
from django.db.models import Min

BATCH = 1000


def receipts_to_watermarks(apps, schema_editor):
    Participant = apps.get_model("messaging", "Participant")
    Receipt = apps.get_model("messaging", "Receipt")
    # The first message each user's client has not confirmed, per conversation: the run ends before it.
    first_missing = {
        (row["user_id"], row["conversation_id"]): row["first"]
        for row in Receipt.objects.filter(delivered_at__isnull=True, read_at__isnull=True)
        .values("user_id", "conversation_id")
        .annotate(first=Min("seq"))
    }
    changed = []
    for participant in Participant.objects.select_related("conversation").iterator(chunk_size=BATCH):
        first = first_missing.get((participant.user_id, participant.conversation_id))
        run_end = first - 1 if first is not None else participant.conversation.last_seq
        participant.delivered_seq = max(run_end, participant.last_read_seq)
        changed.append(participant)
        if len(changed) >= BATCH:
            Participant.objects.bulk_update(changed, ["delivered_seq"])
            changed = []
    if changed:
        Participant.objects.bulk_update(changed, ["delivered_seq"])


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0002_created_at_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='participant',
            name='delivered_seq',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunPython(receipts_to_watermarks, migrations.RunPython.noop),
        migrations.DeleteModel(
            name='Receipt',
        ),
        migrations.RemoveField(
            model_name='message',
            name='status',
        ),
    ]
