"""Which relay answers for which outbox records: a lease per running relay.

Every relay renews a row of its own (`RelayLease`) about once a second, for
OUTBOX_SWEEP_AFTER_SECONDS ahead (3 s at least), and every record committed in its process
names it (`OutboxRecord.relay`). While a relay's lease runs, its records are
its own to send, however long the broker keeps them waiting: a sweep by
another relay leaves them alone, so a broker outage does not end with every
record it held produced twice (once by its own producer, once by a sweep).
A relay that dies stops renewing; once its lease has run out, its records
are taken over by the relay that sweeps them (`claim`), which then answers
for them in turn. A relay that stops cleanly gives its lease up at once.

Times are the processes' own clocks, as the outbox's `created_at` already is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from ..models import OutboxRecord, RelayLease

# How often a running relay renews its lease...
RENEW_SECONDS = 1.0
# ...and the shortest lease: it outlives two renewals missed.
MIN_LEASE_SECONDS = 3 * RENEW_SECONDS
# A lease run out this long ago is forgotten (its relay's records were taken over long since).
FORGET_AFTER = timedelta(hours=1)


def lease_renew(relay_id: uuid.UUID) -> None:
    """Keep this relay's records its own for OUTBOX_SWEEP_AFTER_SECONDS more (MIN_LEASE_SECONDS at least)."""
    until = timezone.now() + timedelta(seconds=max(settings.OUTBOX_SWEEP_AFTER_SECONDS, MIN_LEASE_SECONDS))
    if not RelayLease.objects.filter(id=relay_id).update(alive_until=until):
        RelayLease.objects.create(id=relay_id, alive_until=until)
        # Once per relay start: leases of relays gone long ago go too.
        RelayLease.objects.filter(alive_until__lt=timezone.now() - FORGET_AFTER).delete()


def lease_release(relay_id: uuid.UUID) -> None:
    """Give this relay's records up to the other relays' sweeps (it stops)."""
    RelayLease.objects.filter(id=relay_id).delete()


def orphans(older_than: timedelta) -> QuerySet[OutboxRecord]:
    """Return the records older than `older_than` that no relay with a running lease answers for, by id."""
    now = timezone.now()
    live = RelayLease.objects.filter(alive_until__gt=now).values("id")
    # exclude() keeps the records without a relay (committed where none runs).
    return OutboxRecord.objects.filter(created_at__lt=now - older_than).exclude(relay__in=live).order_by("id")


def claim(relay_id: uuid.UUID, records: Iterable[OutboxRecord]) -> None:
    """Make this relay answer for these records (it is about to send them)."""
    OutboxRecord.objects.filter(id__in=[r.id for r in records]).update(relay=relay_id)


def disown(record_ids: Iterable[int]) -> None:
    """Leave these records to any relay's sweep, as if committed where no relay runs."""
    OutboxRecord.objects.filter(id__in=list(record_ids)).update(relay=None)
