"""Change data capture from PostgreSQL: pgoutput decoding and logical replication helpers."""
