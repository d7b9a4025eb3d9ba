"""The store: SQLAlchemy engines and transactions, the durable inbox, the single writer,
schema migrations, leader election and retention.

It builds on the domain (records, engine) and imports nothing of HTTP or the exposition.
"""
