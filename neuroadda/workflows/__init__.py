"""Use cases composed from the stages (data, models, inference, segmentation, metrics, selection, active):
pretrain, finetune, adapt, the transfer study, block-wise prediction and segmentation. The CLI calls these."""
