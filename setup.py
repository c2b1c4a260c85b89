from setuptools import find_packages, setup

setup(
    name="nnunetv2-smaformer",
    version="0.1.0",
    description="SMAFormerV2 (Swin-T encoder + Synergistic Multi-Attention) as an nnU-Net v2 trainer plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["nnunetv2_smaformer", "nnunetv2_smaformer.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchvision",
        # dynamic-network-architectures (an nnU-Net dependency) bounds timm; stay inside it.
        "timm>=1.0,<1.0.23",
        "nnunetv2>=2.8.1",
        # Imported directly (all three also come with nnunetv2 / timm): the network's base class, timm's
        # pretrained weights through the Hugging Face cache, and .safetensors weight files.
        "dynamic-network-architectures",
        "huggingface_hub",
        "safetensors",
        "numpy",
        "scipy",
        "SimpleITK",
        "nibabel",
        "h5py",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout", "pytest-xdist", "filelock", "medpy"],
    },
    entry_points={
        "console_scripts": [
            "smaformer=nnunetv2_smaformer.cli.main:main",
        ],
    },
)
