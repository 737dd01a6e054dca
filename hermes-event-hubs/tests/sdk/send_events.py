"""Sends the given events through the real azure-eventhub SDK, each batch
with create_batch and send_batch, or each event alone with send_event.

usage: send_events.py CONNECTION_STRING HUB BATCHES [sync]

BATCHES is a JSON list; each item is {"bodies": [...], "partition_id": ...,
"partition_key": ..., "alone": bool, "repeat": N}: its events in one batch,
or each sent alone with send_event when "alone" is true, each body repeated
N times (1 by default). With "sync", the sync client.

Prints one JSON object: {"sent": N}, or the error the SDK raised, with exit
status 3.
"""

import asyncio
import json
import sys

from answer import answer

from azure.eventhub import EventData


def bodies(item):
    return [body * item.get("repeat", 1) for body in item["bodies"]]


def options(item):
    return {k: item[k] for k in ("partition_id", "partition_key") if k in item}


async def send_async(connection, hub, batches):
    from azure.eventhub.aio import EventHubProducerClient

    sent = 0
    producer = EventHubProducerClient.from_connection_string(
        connection, eventhub_name=hub, retry_total=0
    )
    async with producer:
        for item in batches:
            if item.get("alone"):
                for body in bodies(item):
                    await producer.send_event(EventData(body), **options(item))
            else:
                batch = await producer.create_batch(**options(item))
                for body in bodies(item):
                    batch.add(EventData(body))
                await producer.send_batch(batch)
            sent += len(item["bodies"])
    return sent


def send_sync(connection, hub, batches):
    from azure.eventhub import EventHubProducerClient

    sent = 0
    producer = EventHubProducerClient.from_connection_string(
        connection, eventhub_name=hub, retry_total=0
    )
    with producer:
        for item in batches:
            if item.get("alone"):
                for body in bodies(item):
                    producer.send_event(EventData(body), **options(item))
            else:
                batch = producer.create_batch(**options(item))
                for body in bodies(item):
                    batch.add(EventData(body))
                producer.send_batch(batch)
            sent += len(item["bodies"])
    return sent


def main() -> int:
    connection, hub, batches = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sync = sys.argv[4:] == ["sync"]

    def work():
        if sync:
            return {"sent": send_sync(connection, hub, batches)}
        return {"sent": asyncio.run(send_async(connection, hub, batches))}

    return answer(work)


if __name__ == "__main__":
    sys.exit(main())
