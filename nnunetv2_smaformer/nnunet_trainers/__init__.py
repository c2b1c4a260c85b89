"""Folder for nnU-Net's ``nnUNet_extTrainer`` variable (``smaformer trainer-path`` prints it).

nnU-Net imports every module here by file when it looks a trainer up by name, then drops
those modules from ``sys.modules`` again; the modules therefore only re-export the trainers,
whose code lives in :mod:`nnunetv2_smaformer.training`.
"""
