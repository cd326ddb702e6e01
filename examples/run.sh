#!/bin/sh
# Builds and runs the examples: installs Debian's Fashion-MNIST when missing,
# builds the library and the examples, then trains the Fashion-MNIST CNN.
#   sh examples/run.sh [DATA_DIR [EPOCHS [THREADS]]]
set -e
cd "$(dirname "$0")/.."
if [ $# -eq 0 ] && [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  sh tools/install-deps.sh dataset-fashion-mnist
fi
make --no-print-directory build/examples/fashion_mnist >&2
exec build/examples/fashion_mnist "$@"
