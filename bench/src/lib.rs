//! Benchmarks of mta-sts against peers (see `benches/`).
