"""Image signatures beside Notary: OCI signature artifacts (cosign, notation) found through
referrers and cosign's tag scheme, verified against the trusted keys an admin registers, and
the "signed images only" policy.

- ``models``: ``trusted_keys`` (public keys and certificates per repository or namespace) and
  ``signing_policies`` (the signed-only setting per repository or namespace).
"""
