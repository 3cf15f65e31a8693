"""The cluster of equal nodes on Redis (issue 14): membership, placement, ownership, failover."""
