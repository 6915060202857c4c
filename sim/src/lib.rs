//! Deterministic cluster simulation for detcd.
