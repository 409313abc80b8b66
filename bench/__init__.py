"""Benchmarks: dtr against the reference registry (Go distribution) and a trivial aiohttp handler."""
