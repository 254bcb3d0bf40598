"""The provenance gate: a signature or attestation over the exact digest, by a trusted key."""
