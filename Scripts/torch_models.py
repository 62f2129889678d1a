"""PyTorch definitions of fkp's models, shared by make_model_fixtures.py and bench_torch.py.

They mirror Sources/Models exactly: same module names (so state_dict names match the Swift
ParameterStore), same printed repr, same parameter counts. torchvision is not needed: the ResNet
here is torchvision's ResNet (BasicBlock / Bottleneck, stride on the 3x3 conv) with a 1-channel stem
and a configurable base width.
"""
from collections import OrderedDict

import torch
from torch import nn


class NoseNet(nn.Module):
    """Nose-tip regressor: three 3x3 conv + ReLU + 2x2 max-pool stages, then two linear layers."""

    def __init__(self, outputs=2, height=60, width=80):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        )
        h, w = height // 8, width // 8
        self.regressor = nn.Sequential(nn.Flatten(), nn.Linear(32 * h * w, 64), nn.ReLU(), nn.Linear(64, outputs))

    def forward(self, x):
        return self.regressor(self.features(x))


class FaceNet(nn.Module):
    """The 58-keypoint (116 outputs) regressor on grey 120x160 faces."""

    def __init__(self, outputs=116, height=120, width=160):
        super().__init__()
        self.l1 = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), nn.ReLU())
        self.l2 = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.l3 = nn.Sequential(nn.Conv2d(16, 32, 3), nn.ReLU())
        self.l4 = nn.Sequential(nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2, 2))
        h, w = facenet_feature_size(height), facenet_feature_size(width)
        self.fc0 = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(32 * h * w, 512), nn.ReLU())
        self.fc1 = nn.Linear(512, outputs)

    def forward(self, x):
        return self.fc1(self.fc0(self.l4(self.l3(self.l2(self.l1(x))))))


def facenet_feature_size(n):
    n = (n - 3) // 2 + 1      # l1 conv s2
    n = (n - 3) // 2 + 1      # l2 conv s2
    n = n // 2 - 2 - 2        # pool, l3, l4
    return n // 2             # pool


def conv3x3(inp, out, stride=1):
    return nn.Conv2d(inp, out, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(inp, out, stride=1):
    return nn.Conv2d(inp, out, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, outputs=136, width=64):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(1, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, outputs)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class UNet(nn.Module):
    """mateuszbuda/brain-segmentation-pytorch's U-Net with 1 input channel. The original ends in a
    sigmoid; fkp returns raw heatmaps (the loss handles scaling), so this one does too."""

    def __init__(self, in_channels=1, out_channels=68, init_features=32):
        super().__init__()
        f = init_features
        self.encoder1 = UNet._block(in_channels, f, name="enc1")
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.encoder2 = UNet._block(f, f * 2, name="enc2")
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.encoder3 = UNet._block(f * 2, f * 4, name="enc3")
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.encoder4 = UNet._block(f * 4, f * 8, name="enc4")
        self.pool4 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bottleneck = UNet._block(f * 8, f * 16, name="bottleneck")
        self.upconv4 = nn.ConvTranspose2d(f * 16, f * 8, kernel_size=2, stride=2)
        self.decoder4 = UNet._block((f * 8) * 2, f * 8, name="dec4")
        self.upconv3 = nn.ConvTranspose2d(f * 8, f * 4, kernel_size=2, stride=2)
        self.decoder3 = UNet._block((f * 4) * 2, f * 4, name="dec3")
        self.upconv2 = nn.ConvTranspose2d(f * 4, f * 2, kernel_size=2, stride=2)
        self.decoder2 = UNet._block((f * 2) * 2, f * 2, name="dec2")
        self.upconv1 = nn.ConvTranspose2d(f * 2, f, kernel_size=2, stride=2)
        self.decoder1 = UNet._block(f * 2, f, name="dec1")
        self.conv = nn.Conv2d(in_channels=f, out_channels=out_channels, kernel_size=1)

    def forward(self, x):
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.pool1(enc1))
        enc3 = self.encoder3(self.pool2(enc2))
        enc4 = self.encoder4(self.pool3(enc3))
        bottleneck = self.bottleneck(self.pool4(enc4))
        dec4 = self.decoder4(torch.cat((self.upconv4(bottleneck), enc4), dim=1))
        dec3 = self.decoder3(torch.cat((self.upconv3(dec4), enc3), dim=1))
        dec2 = self.decoder2(torch.cat((self.upconv2(dec3), enc2), dim=1))
        dec1 = self.decoder1(torch.cat((self.upconv1(dec2), enc1), dim=1))
        return self.conv(dec1)

    @staticmethod
    def _block(in_channels, features, name):
        return nn.Sequential(OrderedDict([
            (name + "conv1", nn.Conv2d(in_channels, features, kernel_size=3, padding=1, bias=False)),
            (name + "norm1", nn.BatchNorm2d(num_features=features)),
            (name + "relu1", nn.ReLU(inplace=True)),
            (name + "conv2", nn.Conv2d(features, features, kernel_size=3, padding=1, bias=False)),
            (name + "norm2", nn.BatchNorm2d(num_features=features)),
            (name + "relu2", nn.ReLU(inplace=True)),
        ]))


NAMES = ["nosenet", "facenet", "resnet18", "resnet34", "resnet50", "unet"]


def default_config(name, keypoints=None):
    """Mirrors Sources/Models/ModelSpec.swift: (outputs, height, width, base width)."""
    if name == "nosenet":
        return dict(outputs=2 * (keypoints or 1), height=60, width=80, base=None)
    if name == "facenet":
        return dict(outputs=2 * (keypoints or 58), height=120, width=160, base=None)
    if name.startswith("resnet"):
        return dict(outputs=2 * (keypoints or 68), height=224, width=224, base=64)
    if name == "unet":
        return dict(outputs=keypoints or 68, height=224, width=224, base=32)
    raise ValueError(f"unknown model {name}")


def make(name, outputs, height, width, base=None):
    if name == "nosenet":
        return NoseNet(outputs, height, width)
    if name == "facenet":
        return FaceNet(outputs, height, width)
    if name == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], outputs, base or 64)
    if name == "resnet34":
        return ResNet(BasicBlock, [3, 4, 6, 3], outputs, base or 64)
    if name == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], outputs, base or 64)
    if name == "unet":
        return UNet(1, outputs, base or 32)
    raise ValueError(f"unknown model {name}")


def conv_macs(model, height, width):
    """Multiply-accumulates of one forward pass for one image (conv, conv-transpose, linear)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out[0].numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.ConvTranspose2d):
            total += inp[0][0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, height, width))
    for h in handles:
        h.remove()
    return total
