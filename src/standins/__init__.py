"""Stand-in models built offline by the project (random weights, real formats): the embedded defaults of
task=ti and its grader when no real weights are named, and the models tests and benchmarks run on, tiny and
at full size (sd_v1: SD v1.4; random_clip size vit-b-32; course_face: the course's 256x256 face UNet)."""
