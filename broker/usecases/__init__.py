"""The use cases: issuance, the one revocation path, the records listings, introspection, and the ports (the
protocols and plain data) through which the HTTP edge and the background jobs reach them."""
