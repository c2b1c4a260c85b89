"""Folder for nnU-Net's ``nnUNet_extTrainer`` variable (``smaformer trainer-path`` prints it).

It lives apart from :mod:`nnunetv2_smaformer.training` because nnU-Net imports every module here by file when it
looks a trainer up by name, then drops those modules from ``sys.modules`` again: the modules therefore only re-export
the trainers (the user-facing ones from :mod:`nnunetv2_smaformer.training`, the demo's from
:mod:`nnunetv2_smaformer.demo.trainers`).
"""
