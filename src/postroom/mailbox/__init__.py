"""Mailboxes: the DynamoDB index of received mail, its flags, moves and change log (IMAP CONDSTORE / JMAP changes)."""
