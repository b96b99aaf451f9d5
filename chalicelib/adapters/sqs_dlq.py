"""SQS adapter for the operator: look at dead-letter messages without losing them, release or delete them.

Receiving hides a message for ``hold_seconds``; ``release`` makes it visible again at once, ``delete``
removes it. Nothing here moves messages: the operator use cases decide (send first, then delete).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..domain.errors import TransientError
from ..ports import DeadLetter
from .sqs import NamedQueue

MAX_RECEIVE = 10
# Long polling (>= 1s) asks every SQS server, so a small queue is not reported empty by chance.
WAIT_SECONDS = 1


class SqsDeadLetterQueue(NamedQueue):

    def receive(self, max_messages: int, hold_seconds: int) -> list[DeadLetter]:
        """Up to ``max_messages`` messages, each hidden from other consumers for ``hold_seconds``."""
        letters: list[DeadLetter] = []
        seen: set[str] = set()
        while len(letters) < max_messages:
            response = self._client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=min(MAX_RECEIVE, max_messages - len(letters)),
                VisibilityTimeout=hold_seconds, WaitTimeSeconds=WAIT_SECONDS,
                AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                if message["MessageId"] in seen:
                    continue
                seen.add(message["MessageId"])
                attributes = message.get("Attributes", {})
                sent = attributes.get("SentTimestamp")
                letters.append(DeadLetter(
                    message_id=message["MessageId"], body=message["Body"],
                    receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
                    sent_ns=int(sent) * 1_000_000 if sent else None, receipt=message["ReceiptHandle"],
                ))
        return letters

    def release(self, letters: Sequence[DeadLetter]) -> None:
        """Make received messages visible again now (a receipt that expired already is ignored)."""
        for i in range(0, len(letters), MAX_RECEIVE):
            self._client.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(n), "ReceiptHandle": letter.receipt, "VisibilityTimeout": 0}
                for n, letter in enumerate(letters[i : i + MAX_RECEIVE])])

    def delete(self, letters: Sequence[DeadLetter]) -> None:
        for i in range(0, len(letters), MAX_RECEIVE):
            group = letters[i : i + MAX_RECEIVE]
            response = self._client.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(n), "ReceiptHandle": letter.receipt} for n, letter in enumerate(group)])
            if response.get("Failed"):
                failed = response["Failed"][0]
                raise TransientError(f"SQS did not delete {len(response['Failed'])} dead-letter message(s): "
                                     f"{failed.get('Code')} {failed.get('Message')}")

    def approximate_depth(self) -> int:
        """Messages visible in the queue, as SQS estimates it (those being looked at are not counted)."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))
