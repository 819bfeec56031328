// The benchmark harness (benchmarks/README.md). Being written.
