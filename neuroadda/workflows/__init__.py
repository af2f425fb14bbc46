"""Workflows: stages (data, segmentation, inference, ...) composed into what one command runs."""
