"""Image signatures beside Notary: OCI signature artifacts (cosign, notation) found through
referrers and cosign's tag scheme, verified against the trusted keys an admin registers, and
the "signed images only" policy.

- ``models``: ``trusted_keys`` (public keys and certificates per repository or namespace) and
  ``signing_policies`` (the signed-only setting per repository or namespace).
- ``kinds``: what an artifact referring to an image is (cosign, Sigstore bundle, notation,
  attestation, SBOM, other); cosign's tag scheme.
- ``discover``: an image's referrers and cosign-tagged manifests in its repository.
- ``pem``: a trusted key as registered (parsed, checked, fingerprinted); ``crypto``: signature
  checks, certificate chains to registered keys, identities.
- ``cosign``, ``notation``: the verifiers of each format, after the published specifications.
- ``verify``: ``image_signatures`` and ``has_trusted_signature`` (cached), what other parts call.
- ``trustedkeys``, ``views``, ``shapes``: the ``/api/v0`` trusted keys and image signatures.
"""
