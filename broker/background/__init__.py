"""Work no request waits for: the janitor (expiry, retirement of ephemeral accounts, repair, retention, the active-tokens gauge), one replica at a time through Lease election."""
