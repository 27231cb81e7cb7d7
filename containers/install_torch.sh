# Installs the torch build an image is for, before anything else: the largest layer,
# and the one that changes least. requirements.txt pins the same version, which pip
# then finds satisfied (tests/infra/test_packaging.py keeps the two pins equal).
#   cpu:  the CPU-only build from PyTorch's own index, a fraction of the size.
#   cuda: PyPI's Linux x86_64 wheel, the CUDA 13.0 build; it brings its CUDA libraries,
#         and the host supplies only the NVIDIA driver (580 or newer).
set -eu
TORCH_VERSION=2.13.0
case "${1:-}" in
    cuda) pip install "torch==${TORCH_VERSION}" ;;
    cpu) pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu ;;
    *) echo "install_torch.sh: the build must be 'cpu' or 'cuda', not '${1:-}'" >&2; exit 2 ;;
esac
