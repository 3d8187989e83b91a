"""Model registry and model families (segmentation, DINOv2 backbone, four-view classifier)."""

from core_model.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
