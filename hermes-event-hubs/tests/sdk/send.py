"""Sends events through the real azure-eventhub SDK, as the quickstart's
send.py does (async, create_batch and send_batch), then to a partition by
id, by key, and one event alone.

usage: send.py CONNECTION_STRING HUB

Prints one JSON object: the batch size limit the endpoint announced, or the
error the SDK raised, with exit status 3.
"""

import asyncio
import sys

from answer import answer

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient


async def run() -> dict:
    producer = EventHubProducerClient.from_connection_string(
        sys.argv[1], eventhub_name=sys.argv[2], retry_total=0
    )
    async with producer:
        batch = await producer.create_batch()
        batch.add(EventData("First event "))
        batch.add(EventData("Second event"))
        batch.add(EventData("Third event"))
        await producer.send_batch(batch)
        limit = batch.max_size_in_bytes

        batch = await producer.create_batch(partition_id="2")
        batch.add(EventData("to partition 2"))
        await producer.send_batch(batch)

        for i in range(3):
            batch = await producer.create_batch(partition_key="user-7")
            batch.add(EventData(f"keyed {i}"))
            await producer.send_batch(batch)

        await producer.send_event(EventData("single"), partition_id="1")
    return {"max_size_in_bytes": limit}


def main() -> int:
    return answer(lambda: asyncio.run(run()))


if __name__ == "__main__":
    sys.exit(main())
