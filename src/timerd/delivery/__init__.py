"""Sending one webhook: the client and its connection pool, the outbound (SSRF) policy,
signing, and the retry rule as a pure function. It returns outcomes and records nothing."""
