"""Build Lambda layers with pip for the Lambda platform, never in a container.

    python -m layers.build                      # every layer, for arm64 / Python 3.14
    python -m layers.build inference --arch x86_64
    python -m layers.build --check              # do wheels exist for every pinned package? (no install)
    python -m layers.build --local              # the same pins for this interpreter (import tests)
    python -m layers.build --prune              # delete cached builds no longer current
    python -m layers.build --sizes cdk.out      # each zip function's unzipped code + layers, after a synth

A layer is a directory layers/<name>/ holding a pinned requirements.txt (`-r other.txt` includes
are followed); a directory that also holds a Dockerfile is a container image context (e.g.
layers/training), not a layer: `--check` resolves its pins, nothing builds it here. pip installs
a layer with `--only-binary=:all: --platform manylinux_2_28_<cpu> --platform manylinux2014_<cpu>
--implementation cp --python-version <runtime>` into
layers/.build/<name>-<arch>-py<ver>-<hash>/python; Lambda's Amazon Linux 2023 has glibc 2.34, so
manylinux_2_28 wheels run there. The hash covers the flattened requirements, the target and this
recipe (platform tags and slimming rules), so a build is reused until one of them changes.
Concurrent builds of the same layer (several synths at once) wait on a file lock.

After pip, the layer is slimmed (see SLIM_* and BOTOCORE_SERVICES); a rule-matched shared
library that a remaining binary still loads is kept. Slimming is only trusted because
tests/infra/test_packaging.py (test_packaging_each_function_imports_everything_from_its_own_layers)
builds the same pins with the same slimming for the local interpreter and imports, in an isolated
interpreter, every module each function's handler uses from its code and layers alone.

Beside each build, <dir>.json records what was resolved (package versions, wheel files), what
slimming removed, and the unzipped size; its presence marks the build complete.

The package, by concern: target (architecture, Python, platform tags), requirements (which
layers exist, their flattened pins), wheels (the pip command and resolution), slimming (what is
removed after pip), cache (build keys, cache directories, manifests, locks, pruning), builder
(building a layer and its local twin), packaging (zip functions and their sizes in a synthesized
assembly, read with layers.assembly) and cli (`python -m layers.build`).
"""
