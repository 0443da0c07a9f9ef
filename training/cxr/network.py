"""The chest X-ray network: a small MONAI DenseNet with a class-activation-map head.

The network returns the logits and the feature map before global pooling; the logits
are a linear layer over the spatial mean of the features, so the linear layer's
weights turn the feature map into class activation maps (``ReLU(Σ_c w_kc · F_c)``)
without PyTorch at serving time.
"""

from __future__ import annotations

import torch
from monai.networks.nets.densenet import DenseNet
from torch import nn

from training.cxr.config import CxrNetConfig

__all__ = ["CxrNet"]


class CxrNet(nn.Module):
    """DenseNet features, ReLU, global average pooling and one linear layer.

    ``forward`` returns ``(logits [N, out_channels], features [N, C, h, w])``.
    """

    def __init__(self, config: CxrNetConfig | None = None) -> None:
        super().__init__()
        config = config or CxrNetConfig()
        self.config = config
        backbone = DenseNet(
            spatial_dims=2,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            init_features=config.init_features,
            growth_rate=config.growth_rate,
            block_config=config.block_config,
            bn_size=config.bn_size,
            dropout_prob=config.dropout_prob,
        )
        self.features = backbone.features
        linear = backbone.class_layers.out
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"MONAI DenseNet's last layer is {type(linear).__name__}, not Linear")
        self.classifier = linear

    @property
    def feature_channels(self) -> int:
        """Channels ``C`` of the feature map."""
        return int(self.classifier.in_features)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.features(image))
        logits = self.classifier(features.mean(dim=(2, 3)))
        return logits, features

    def class_weights(self) -> torch.Tensor:
        """The linear layer's weights, [out_channels, C], for class activation maps."""
        return self.classifier.weight.detach().clone()
