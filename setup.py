from setuptools import setup

setup(
    name="fasthg",
    version="0.1.0",
    description="Fused Triton kernels for the stacked hourglass pose network, as drop-in PyTorch modules",
    python_requires=">=3.10",
    packages=["fasthg", "fasthg.ops", "fasthg.nn", "fasthg.reference", "fasthg.data", "fasthg.kernels"],
    package_dir={"fasthg.kernels": "kernels"},
    install_requires=[
        "torch>=2.5",
        "triton>=3.2",
        "numpy",
        "scipy",
        "tqdm",
        "matplotlib",
        "h5py",
        "opencv-python-headless",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "pytest-benchmark", "hypothesis", "onnx", "onnxruntime"],
        "export": ["onnx", "onnxruntime"],  # python -m fasthg.export --format onnx, and running its output
        "bench": ["pytest-benchmark"],
    },
)
