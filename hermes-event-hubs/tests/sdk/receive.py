"""Receives events through the real azure-eventhub SDK, as the quickstart's
recv.py does (async, receive with on_event), or with the sync client.

usage: receive.py CONNECTION_STRING HUB OPTIONS

OPTIONS is a JSON object:
  count           stop after this many events (default: when idle)
  idle            seconds without an event that end the receive (default 3)
  partition_id    receive from this partition only
  consumer_group  default "$Default"
  offset | sequence_number | enqueued_time_ms | latest
                  the starting position (default: "-1", the start)
  inclusive       whether the starting position itself is included
  owner_level     the receiver's epoch
  track           track_last_enqueued_event_properties
  sync            use the sync client
  checkpoint      {"connection": ..., "container": ...}: a BlobCheckpointStore
                  (the container made if missing), each event checkpointed
                  as it comes
  deadline        seconds after which the receive ends whatever it has
                  (default 60)

Prints one JSON object: {"events": [...]} with each event's partition,
body, sequence number, offset, enqueued time (ms), partition key,
application properties and, when tracked, the partition's last enqueued
event; or the error the SDK raised
(or passed to on_error), with exit status 3.
"""

import asyncio
import datetime
import json
import sys

from answer import answer, error_of
import threading


def starting_position(options):
    if "offset" in options:
        return options["offset"]
    if "sequence_number" in options:
        return options["sequence_number"]
    if "enqueued_time_ms" in options:
        return datetime.datetime.fromtimestamp(
            options["enqueued_time_ms"] / 1000, tz=datetime.timezone.utc
        )
    if options.get("latest"):
        return "@latest"
    return "-1"


def describe(partition_id, event, options):
    answer = {
        "partition": partition_id,
        "body": event.body_as_str(encoding="UTF-8"),
        "sequence_number": event.sequence_number,
        "offset": event.offset,
        "enqueued_time_ms": round(event.enqueued_time.timestamp() * 1000),
        "partition_key": event.partition_key.decode()
        if isinstance(event.partition_key, bytes)
        else event.partition_key,
        "properties": {text(k): text(v) for k, v in (event.properties or {}).items()},
    }
    return answer


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def tracked(context):
    last = context.last_enqueued_event_properties
    if not last:
        return None
    return {
        "sequence_number": last.get("sequence_number"),
        "offset": last.get("offset"),
    }


class Collector:
    def __init__(self, options):
        self.options = options
        self.events = []
        self.errors = []
        self.done = None

    def take(self, context, event):
        if event is None:  # max_wait_time passed without an event
            if "count" not in self.options:
                self.finish()
            return False
        described = describe(context.partition_id, event, self.options)
        if self.options.get("track"):
            described["last_enqueued"] = tracked(context)
        self.events.append(described)
        if len(self.events) >= self.options.get("count", float("inf")):
            self.finish()
        return True

    def finish(self):
        if self.done is not None:
            self.done()


def keywords(options):
    kwargs = {
        "starting_position": starting_position(options),
        "starting_position_inclusive": options.get("inclusive", False),
        "max_wait_time": options.get("idle", 3),
    }
    for name in ("partition_id", "owner_level"):
        if name in options:
            kwargs[name] = options[name]
    if options.get("track"):
        kwargs["track_last_enqueued_event_properties"] = True
    return kwargs


async def receive_async(connection, hub, options):
    from azure.eventhub.aio import EventHubConsumerClient

    store = None
    if "checkpoint" in options:
        from azure.eventhub.extensions.checkpointstoreblobaio import (
            BlobCheckpointStore,
        )

        from azure.core.exceptions import ResourceExistsError
        from azure.eventhub.extensions.checkpointstoreblobaio._vendor.storage.blob.aio import (
            ContainerClient,
        )

        checkpoint = options["checkpoint"]
        async with ContainerClient.from_connection_string(
            checkpoint["connection"], checkpoint["container"]
        ) as container:
            try:
                await container.create_container()
            except ResourceExistsError:
                pass
        store = BlobCheckpointStore.from_connection_string(
            checkpoint["connection"], checkpoint["container"]
        )
    collector = Collector(options)
    client = EventHubConsumerClient.from_connection_string(
        connection,
        consumer_group=options.get("consumer_group", "$Default"),
        eventhub_name=hub,
        checkpoint_store=store,
        retry_total=0,
        # The processor looks at the client every second (10 s by
        # default), so that closing it ends the receive at once, each
        # partition's ownership given up for the next run to claim.
        load_balancing_interval=1,
    )
    finished = asyncio.Event()
    collector.done = finished.set

    async def on_event(context, event):
        # Checkpointed before it counts: the last event counted is
        # checkpointed before the receive ends.
        if event is not None and store is not None:
            await context.update_checkpoint(event)
        collector.take(context, event)

    async def on_error(context, error):
        collector.errors.append(error)
        finished.set()

    async with client:
        task = asyncio.ensure_future(
            client.receive(on_event=on_event, on_error=on_error, **keywords(options))
        )
        try:
            await asyncio.wait_for(finished.wait(), timeout=options.get("deadline", 60))
        except asyncio.TimeoutError:
            pass
    try:
        await asyncio.wait_for(task, timeout=10)
    except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
        pass
    if store is not None:
        await store.close()
    return collector


def receive_sync(connection, hub, options):
    from azure.eventhub import EventHubConsumerClient

    collector = Collector(options)
    client = EventHubConsumerClient.from_connection_string(
        connection,
        consumer_group=options.get("consumer_group", "$Default"),
        eventhub_name=hub,
        retry_total=0,
    )
    finished = threading.Event()
    collector.done = finished.set

    def on_error(context, error):
        collector.errors.append(error)
        finished.set()

    worker = threading.Thread(
        target=lambda: client.receive(
            on_event=collector.take, on_error=on_error, **keywords(options)
        )
    )
    worker.start()
    finished.wait(timeout=options.get("deadline", 60))
    client.close()
    worker.join()
    return collector


def main() -> int:
    connection, hub, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

    def work():
        if options.get("sync"):
            collector = receive_sync(connection, hub, options)
        else:
            collector = asyncio.run(receive_async(connection, hub, options))
        result = {"events": collector.events}
        if collector.errors:
            result.update(error_of(collector.errors[0]))
        return result

    return answer(work)


if __name__ == "__main__":
    sys.exit(main())
