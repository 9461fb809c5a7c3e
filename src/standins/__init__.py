"""Stand-in models built offline by the project (random weights, real formats): the embedded defaults of
task=ti and task=clip when no real weights are named, and the models tests and benchmarks run on."""
