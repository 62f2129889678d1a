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


def make_divisible(v, divisor):
    """torchvision's _make_divisible: the nearest multiple of divisor, at least divisor, never below 90 % of v."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation as MobileNetV2 uses it: conv (bias-free), BatchNorm, ReLU6."""

    def __init__(self, inp, out, kernel_size=3, stride=1, groups=1):
        super().__init__(nn.Conv2d(inp, out, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 block: 1x1 expand (when t > 1), 3x3 depthwise (with the stride), 1x1
    linear projection; the input is added when the stride is 1 and the channels stay the same."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [Conv2dNormActivation(inp, hidden, kernel_size=1)] if expand_ratio != 1 else []
        layers += [Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# MobileNetV2's stages: expansion t, channels c (at width 32), blocks n, stride s of the first block.
MOBILENET_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_features(width, stage6_stride=2):
    """MobileNetV2's features on a 1-channel input for stem width `width` (channels rounded to
    multiples of min(8, width), the last 1x1 conv scaled too: 1280·width/32); `stage6_stride` is the
    stride of the 160-channel stage (1: the features end at stride 16)."""
    divisor = min(8, width)
    layers = [Conv2dNormActivation(1, width, stride=2)]
    inp = width
    for index, (t, c, n, s) in enumerate(MOBILENET_STAGES):
        out = make_divisible(c * width / 32, divisor)
        stride = stage6_stride if index == 5 else s
        for i in range(n):
            layers.append(InvertedResidual(inp, out, stride if i == 0 else 1, t))
            inp = out
    last = make_divisible(1280 * width / 32, divisor)
    layers.append(Conv2dNormActivation(inp, last, kernel_size=1))
    return nn.Sequential(*layers)


def mobilenet_init(model):
    """torchvision's MobileNetV2 initialisation of convolutions and BatchNorms."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def pip_neighbours(keypoints):
    """PIPNet's neighbour count: 10, or keypoints - 1 when there are fewer."""
    return max(0, min(10, keypoints - 1))


def pip_keypoints(outputs):
    """K from a PIPNet output channel count K·(3 + 2M)."""
    for k in range(1, outputs // 3 + 1):
        if k * (3 + 2 * pip_neighbours(k)) == outputs:
            return k
    raise ValueError(f"{outputs} outputs are no PIPNet layout")


class MobileNetPIP(nn.Module):
    """PIPNet (Jin et al. 2021) on MobileNetV2 features with the 160-channel stage at stride 1
    (stride 16: an 8x8 grid at 128²): 1x1 heads for the K score maps, the K x and y offsets and the
    K·M neighbour x and y offsets, returned concatenated along the channels. Heads start as PIPNet's:
    normal(0, 0.001) weights, zero biases."""

    def __init__(self, outputs=68 * 23, width=32):
        super().__init__()
        k = pip_keypoints(outputs)
        m = pip_neighbours(k)
        self.features = mobilenet_features(width, stage6_stride=1)
        c = self.features[-1][0].out_channels
        self.cls_layer = nn.Conv2d(c, k, 1)
        self.x_layer = nn.Conv2d(c, k, 1)
        self.y_layer = nn.Conv2d(c, k, 1)
        self.nb_x_layer = nn.Conv2d(c, k * m, 1)
        self.nb_y_layer = nn.Conv2d(c, k * m, 1)
        mobilenet_init(self.features)
        for head in [self.cls_layer, self.x_layer, self.y_layer, self.nb_x_layer, self.nb_y_layer]:
            nn.init.normal_(head.weight, std=0.001)
            nn.init.zeros_(head.bias)

    def forward(self, x):
        x = self.features(x)
        return torch.cat([self.cls_layer(x), self.x_layer(x), self.y_layer(x), self.nb_x_layer(x), self.nb_y_layer(x)], 1)


def pip_decode(maps, neighbours, height, width):
    """PIPHead.decode's twin: maps [N, K(3 + 2M), gh, gw] → keypoints [N, K, 2] in crop pixels: each
    score map's best cell plus the offsets there, averaged with the votes of the keypoints whose
    neighbours include it."""
    n, _, gh, gw = maps.shape
    k, m = len(neighbours), len(neighbours[0]) if neighbours else 0
    flat = maps.reshape(n, -1, gh * gw)
    best = flat[:, :k].argmax(dim=2, keepdim=True)                      # [N, K, 1]
    cx, cy = (best % gw).to(maps.dtype), torch.div(best, gw, rounding_mode="floor").to(maps.dtype)
    sums = torch.zeros(n, k, 2, dtype=maps.dtype)
    votes = torch.zeros(k, dtype=maps.dtype)
    own_x = (cx + flat[:, k:2 * k].gather(2, best))[..., 0] / gw
    own_y = (cy + flat[:, 2 * k:3 * k].gather(2, best))[..., 0] / gh
    sums[..., 0] += own_x
    sums[..., 1] += own_y
    votes += 1
    for i, row in enumerate(neighbours):
        cell = best[:, i]                                               # [N, 1]
        for slot, j in enumerate(row):
            sums[:, j, 0] += (cx[:, i, 0] + flat[:, 3 * k + i * m + slot].gather(1, cell)[:, 0]) / gw
            sums[:, j, 1] += (cy[:, i, 0] + flat[:, 3 * k + k * m + i * m + slot].gather(1, cell)[:, 0]) / gh
            votes[j] += 1
    return sums / votes[None, :, None] * torch.tensor([width, height], dtype=maps.dtype)


class MobileNetPFLD(nn.Module):
    """torchvision's MobileNetV2 features on a 1-channel input, scaled by width/32 (the stem width;
    channels rounded to multiples of min(8, width), and the last 1x1 conv scaled too: 1280·width/32),
    with a PFLD-style multi-scale head: the global averages of the last feature map at strides 8,
    16 and 32 (features.6, .13, .18), concatenated, then one linear layer."""

    TAPS = (6, 13, 18)

    def __init__(self, outputs=136, width=8):
        super().__init__()
        self.features = mobilenet_features(width)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        tapped = sum(self.features[i].conv[-1].num_features if isinstance(self.features[i], InvertedResidual)
                     else self.features[i][1].num_features for i in self.TAPS)
        self.fc = nn.Linear(tapped, outputs)
        mobilenet_init(self)  # fc keeps nn.Linear's default

    def forward(self, x):
        pooled = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                pooled.append(torch.flatten(self.avgpool(x), 1))
        return self.fc(torch.cat(pooled, 1))


NAMES = ["nosenet", "facenet", "resnet18", "resnet34", "resnet50", "unet", "mobilenet-pfld", "mobilenet-pip"]


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
    if name == "mobilenet-pfld":
        return dict(outputs=2 * (keypoints or 68), height=112, width=112, base=8)
    if name == "mobilenet-pip":
        k = keypoints or 68
        return dict(outputs=k * (3 + 2 * pip_neighbours(k)), height=128, width=128, base=32)
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
    if name == "mobilenet-pfld":
        return MobileNetPFLD(outputs, base or 8)
    if name == "mobilenet-pip":
        return MobileNetPIP(outputs, base or 32)
    raise ValueError(f"unknown model {name}")


def conv_macs(model, height, width):
    """Multiply-accumulates of one forward pass for one image (conv, conv-transpose, linear)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
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
