"""Reads a hub's properties through the real azure-eventhub SDK.

usage: management.py CONNECTION_STRING HUB [CA_FILE ENDPOINT]

With CA_FILE and ENDPOINT (`sb://127.0.0.1:PORT`), the connection is TLS
to ENDPOINT, its certificate checked against CA_FILE.

Prints one JSON object: the hub's properties, its partition ids and each
partition's properties, or the error the SDK raised (its class and
message), with exit status 3.
"""

import sys

from answer import answer

from azure.eventhub import EventHubProducerClient


def main() -> int:
    tls = {}
    if len(sys.argv) > 4:
        tls = {"connection_verify": sys.argv[3], "custom_endpoint_address": sys.argv[4]}
    client = EventHubProducerClient.from_connection_string(
        sys.argv[1], eventhub_name=sys.argv[2], retry_total=0, **tls
    )

    def work():
        with client:
            properties = client.get_eventhub_properties()
            ids = client.get_partition_ids()
            partitions = {
                pid: client.get_partition_properties(pid) for pid in ids
            }
        return {
            "name": properties["eventhub_name"],
            "created_at": properties["created_at"].isoformat(),
            "partition_ids": list(properties["partition_ids"]),
            "ids": ids,
            "partitions": {
                pid: {
                    "begin_sequence_number": p["beginning_sequence_number"],
                    "last_enqueued_sequence_number": p["last_enqueued_sequence_number"],
                    "last_enqueued_offset": p["last_enqueued_offset"],
                    "last_enqueued_time_ms": round(
                        p["last_enqueued_time_utc"].timestamp() * 1000
                    ),
                    "is_empty": p["is_empty"],
                }
                for pid, p in partitions.items()
            },
        }

    return answer(work)


if __name__ == "__main__":
    sys.exit(main())
