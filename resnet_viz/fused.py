"""Many networks of one architecture trained as one: a fused group (HFTA, Wang et al. 2021).

A ResNet and its plain twin have the same layers (the plain twin never adds the shortcut), and so do the
seeds of one network. A :class:`FusedGroup` stacks ``N`` such members along the channel axis:

* every convolution becomes one grouped convolution (``groups=N``), so member ``i`` only ever sees its own
  channels ``i*C .. (i+1)*C - 1``;
* BatchNorm over the ``N*C`` stacked channels is each member's own BatchNorm (statistics are per channel),
  with its own running statistics;
* the final linear layer is one batched matrix product; a plain member's shortcut is multiplied by 0;
* :class:`FusedOptimizer` is Adam or SGD over the stacked parameters with each member's own step count and
  learning rate.

Each member gets its own batch (the input is the members' batches side by side on the channel axis), and
the loss is the sum of the members' losses, so each member's gradient is exactly its own. :meth:`member`
gives a member back as an ordinary :class:`~resnet_viz.models.TwinNet` at any time, with an ordinary state
dict; :meth:`FusedOptimizer.member_state_dict` gives its optimiser state as ``torch.optim`` would hold it.
"""

from __future__ import annotations

import copy
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models import CIFAR_ARCH, PadShortcut, TwinNet, build_twins
from .training import Recipe


class FusionUnsupported(ValueError):
    """The networks cannot share one fused group (different architecture, or a layer it cannot stack)."""


def _fusion_key(model: TwinNet) -> tuple:
    """What must be equal for two networks to share a group: everything but the seed and the shortcut."""
    config = {k: v for k, v in model.config.items() if k not in ("seed", "weights")}
    return tuple(sorted(config.items()))


def can_fuse(models: Sequence[TwinNet]) -> bool:
    """True when ``models`` can be one :class:`FusedGroup`."""
    try:
        _check_members(models)
    except FusionUnsupported:
        return False
    return True


def _check_members(models: Sequence[TwinNet]) -> None:
    if not models:
        raise FusionUnsupported("a fused group needs at least one network")
    first = models[0]
    if first.arch != CIFAR_ARCH or first.preact:
        raise FusionUnsupported("only CIFAR post-activation networks fuse")
    if any(_fusion_key(m) != _fusion_key(first) for m in models):
        raise FusionUnsupported("the networks of a group must share one architecture")
    for m in models:
        for _, blk in m.blocks():
            if blk.downsample is not None and not isinstance(blk.downsample, PadShortcut):
                raise FusionUnsupported("only parameter-free shortcuts (option A) fuse")


class _StackedPad(nn.Module):
    """Option A's shortcut for N stacked members: subsample, then zero-pad each member's channels."""

    def __init__(self, members: int, stride: int, extra_channels: int):
        super().__init__()
        self.members, self.stride, self.extra = members, stride, extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        b, c, h, w = x.shape
        half = self.extra // 2
        x = F.pad(x.reshape(b, self.members, c // self.members, h, w), (0, 0, 0, 0, half, self.extra - half))
        return x.reshape(b, -1, h, w)


class _MaskedShortcut(nn.Module):
    """The shortcut of a block whose members mix ResNets (mask 1) and plain twins (mask 0)."""

    mask: torch.Tensor  # a buffer

    def __init__(self, inner: nn.Module | None, mask: torch.Tensor):
        super().__init__()
        self.inner = inner
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x if self.inner is None else self.inner(x)) * self.mask.to(x.dtype)


class _StackedLinear(nn.Module):
    """N linear layers on stacked features: ``[B, N*C] -> [B, N, K]``."""

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.members = members
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.members, -1).transpose(0, 1)  # N x B x C
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2)).transpose(0, 1)


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's kernel size, stride or padding (typed as any tuple; a 2-d convolution's is a pair)."""
    first, second = values
    return first, second


def _widen(module: nn.Module, n: int) -> nn.Module:
    """The layer of one member as the layer of ``n`` stacked members (weights left uninitialised)."""
    if isinstance(module, nn.Conv2d):
        return nn.Conv2d(
            module.in_channels * n,
            module.out_channels * n,
            _pair(module.kernel_size),
            _pair(module.stride),
            module.padding if isinstance(module.padding, str) else _pair(module.padding),
            groups=module.groups * n,
            bias=module.bias is not None,
        )
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(module.num_features * n, eps=module.eps, momentum=module.momentum)
    if isinstance(module, nn.Linear):
        return _StackedLinear(n, module.in_features, module.out_features)
    if isinstance(module, PadShortcut):
        return _StackedPad(n, module.stride, module.extra_channels)
    return module


class FusedGroup(nn.Module):
    """``N`` networks of one architecture as one network; ``forward`` takes ``[B, N*C_in, H, W]`` (member
    ``i``'s batch in channels ``i*C_in ..``) and returns logits ``[B, N, K]``."""

    def __init__(self, members: Sequence[TwinNet]):
        super().__init__()
        _check_members(members)
        n = len(members)
        self.size = n
        self.twins = [m.twin for m in members]
        self.configs = [dict(m.config) for m in members]
        self._class_names = [m.class_names for m in members]
        self._preprocess = [dict(m.preprocess) for m in members]
        self.in_channels = members[0].conv1.in_channels
        template = copy.deepcopy(members[0])
        for name, module in list(template.named_modules()):
            for child_name, child in list(module.named_children()):
                wide = _widen(child, n)
                if wide is not child:
                    setattr(module, child_name, wide)
        residual = torch.tensor([m.residual for m in members])
        for (_, blk), *member_blocks in zip(template.blocks(), *(m.blocks() for m in members)):
            width = blk.bn2.num_features // n if isinstance(blk.bn2, nn.BatchNorm2d) else blk.conv2.out_channels // n
            if residual.all():
                blk.residual = True
            elif not residual.any():
                blk.residual, blk.downsample = False, None
            else:
                pad = member_blocks[int(residual.nonzero()[0])][1].downsample
                inner = _StackedPad(n, pad.stride, pad.extra_channels) if pad is not None else None
                mask = residual.float().repeat_interleave(width).view(1, -1, 1, 1)
                blk.residual, blk.downsample = True, _MaskedShortcut(inner, mask)
        self.net = template.to(next(members[0].parameters()).dtype)
        self._shapes = {k: v.shape for k, v in members[0].state_dict().items()}
        with torch.no_grad():
            for i, m in enumerate(members):
                self.load_member(i, m.state_dict())
        self.train(members[0].training)

    # -- moving members in and out ---------------------------------------------------------------------
    def _stacked(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.net.state_dict(keep_vars=True).items()}

    def member_view(self, tensor: torch.Tensor, name: str, i: int | slice) -> torch.Tensor:
        """Member ``i``'s part of the stacked ``tensor`` named ``name`` (a view; shared scalars as they are);
        ``i = slice(None)`` gives all members as ``[N, *member_shape]``."""
        shape = self._shapes[name]
        if tensor.dim() == 0:
            return tensor
        return tensor.view(self.size, *shape)[i]

    @torch.no_grad()
    def load_member(self, i: int, state: dict[str, torch.Tensor]) -> None:
        """Put an ordinary ``TwinNet`` state dict into member ``i`` (keys a plain twin lacks are skipped)."""
        stacked = self._stacked()
        for name, value in state.items():
            target = stacked[name]
            if target.dim() == 0:
                target.copy_(value)
            else:
                self.member_view(target.detach(), name, i).copy_(value)

    @torch.no_grad()
    def member_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s weights and buffers as an ordinary ``TwinNet`` state dict (copies)."""
        stacked = self._stacked()
        return {name: self.member_view(stacked[name].detach(), name, i).clone() for name in self._shapes}

    def member(self, i: int, device: torch.device | str | None = None) -> TwinNet:
        """Member ``i`` as an ordinary ``TwinNet`` (a copy, in the group's train/eval mode)."""
        config = dict(self.configs[i])
        options = {
            k: config[k]
            for k in ("depth", "width", "num_classes", "in_channels", "norm", "activation", "block", "shortcut", "init")
        }
        resnet, plain = build_twins(config["arch"], seed=config["seed"], **options)
        model = resnet if self.twins[i] == "resnet" else plain
        model.to(next(self.parameters()).dtype).load_state_dict(self.member_state_dict(i))
        model.class_names = self._class_names[i]
        model.preprocess = dict(self._preprocess[i])
        model.train(self.training)
        return model.to(device or next(self.parameters()).device)

    # -- running --------------------------------------------------------------------------------------
    def stack_inputs(self, xs: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """The group's input from one batch per member, or one batch every member sees."""
        if isinstance(xs, torch.Tensor):
            return xs.repeat(1, self.size, 1, 1)
        return torch.cat(list(xs), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def parameter_names(self) -> list[str]:
        return [name for name, _ in self.net.named_parameters()]

    def grad_norms(self, names: Iterable[str]) -> list[list[float]]:
        """Per member, the gradient norm of each named parameter (as a member alone would report it)."""
        params = dict(self.net.named_parameters())
        norms = []
        for name in names:
            g = params[name].grad
            if g is None:
                norms.append(torch.zeros(self.size))
            else:
                norms.append(g.detach().float().reshape(self.size, -1).norm(dim=1))
        table = torch.stack(norms, dim=1).tolist() if norms else [[] for _ in range(self.size)]
        return table


def fused_loss(logits: torch.Tensor, ys: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy on its own labels: a vector of N losses."""
    b, n, k = logits.shape
    y = ys if isinstance(ys, torch.Tensor) and ys.dim() == 2 else torch.stack(list(ys), dim=1)  # B x N
    per_image = F.cross_entropy(logits.float().reshape(b * n, k), y.reshape(b * n), reduction="none")
    return per_image.view(b, n).mean(0)


class FusedOptimizer:
    """Adam or SGD (as :func:`~resnet_viz.training.make_optimizer` builds them) over a group's stacked
    parameters, with each member's own learning rate and step count.

    ``step(lrs, active)``: ``lrs`` one learning rate per member; members not ``active`` (diverged, stopped)
    keep their weights and state.
    """

    def __init__(self, group: FusedGroup, recipes: Sequence[Recipe]):
        if len(recipes) != group.size:
            raise ValueError("one recipe per member")
        kinds = {(r.optimizer, r.weight_decay, r.momentum if r.optimizer == "sgd" else None) for r in recipes}
        if len(kinds) != 1:
            raise FusionUnsupported("the members of a group must share one optimiser and weight decay")
        self.group = group
        self.recipe = recipes[0]
        self.names = group.parameter_names()
        named = dict(group.net.named_parameters())
        self.params = [named[n] for n in self.names]
        self._shapes = [tuple(group._shapes[n]) for n in self.names]
        self.n = group.size
        self.steps = torch.zeros(self.n, dtype=torch.long)
        dev = self.params[0].device
        if self.recipe.optimizer == "adam":
            self.exp_avg = [torch.zeros_like(p) for p in self.params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        else:
            self.momentum_buffer = [torch.zeros_like(p) for p in self.params]
        self._device = dev

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _per_member(self, values: Sequence[float], ndim: int) -> torch.Tensor:
        """One value per member, shaped to broadcast over a parameter split as ``[N, *member_shape]``."""
        t = torch.tensor(values, dtype=self.params[0].dtype, device=self._device)
        return t.view(self.n, *([1] * ndim))

    @torch.no_grad()
    def step(self, lrs: Sequence[float], active: Sequence[bool] | None = None) -> None:
        active_list = [True] * self.n if active is None else [bool(a) for a in active]
        self.steps += torch.tensor(active_list, dtype=torch.long)
        lr = [lr if a else 0.0 for lr, a in zip(lrs, active_list)]
        keep = [1.0 if a else 0.0 for a in active_list]
        r, wd = self.recipe, self.recipe.weight_decay
        everyone = all(active_list)
        scalars: dict[int, tuple] = {}  # per parameter rank: the per-member factors, built once per step
        if r.optimizer == "adam":
            b1, b2, eps = 0.9, 0.999, 1e-8
            t = self.steps.clamp(min=1).double()
            step_size = (torch.tensor(lr, dtype=torch.float64) / (1 - b1**t)).tolist()
            bc2_sqrt = (1 - b2**t).sqrt().tolist()
            for p, m, v, shape in zip(self.params, self.exp_avg, self.exp_avg_sq, self._shapes):
                if p.grad is None:
                    continue
                k = len(shape)
                if k not in scalars:
                    scalars[k] = (
                        self._per_member(keep, k).bool(),
                        self._per_member(step_size, k),
                        self._per_member(bc2_sqrt, k),
                    )
                alive, size, bc2 = scalars[k]
                pv, mv, vv = p.view(self.n, *shape), m.view(self.n, *shape), v.view(self.n, *shape)
                g = p.grad.view(self.n, *shape)
                if wd:
                    g = g.add(pv, alpha=wd)
                if everyone:
                    mv.lerp_(g, 1 - b1)
                    vv.mul_(b2).addcmul_(g, g, value=1 - b2)
                    pv.addcdiv_(mv * size, (vv.sqrt() / bc2).add_(eps), value=-1.0)
                else:  # members left out keep weights and state, even when their gradients are NaN
                    new_m = torch.where(alive, torch.lerp(mv, g, 1 - b1), mv)
                    new_v = torch.where(alive, vv * b2 + (1 - b2) * g * g, vv)
                    mv.copy_(new_m)
                    vv.copy_(new_v)
                    pv.copy_(torch.where(alive, pv - new_m * size / ((new_v.sqrt() / bc2) + eps), pv))
        else:
            first = [1.0 if s == 1 else 0.0 for s in self.steps.tolist()]
            for p, buf, shape in zip(self.params, self.momentum_buffer, self._shapes):
                if p.grad is None:
                    continue
                k = len(shape)
                if k not in scalars:
                    scalars[k] = (
                        self._per_member(lr, k),
                        self._per_member(first, k).bool(),
                        self._per_member(keep, k).bool(),
                    )
                lr_t, is_first, alive = scalars[k]
                pv, bv = p.view(self.n, *shape), buf.view(self.n, *shape)
                g = p.grad.view(self.n, *shape)
                if wd:
                    g = g.add(pv, alpha=wd)
                if r.momentum:
                    bv.copy_(torch.where(alive, torch.where(is_first, g, bv * r.momentum + g), bv))
                    g = bv
                pv.copy_(torch.where(alive, pv - g * lr_t, pv))

    def member_state_dict(self, i: int) -> dict:
        """Member ``i``'s optimiser state in the form ``torch.optim.Adam`` / ``SGD`` over
        ``member(i).parameters()`` holds it (parameters in the model's order)."""
        r = self.recipe
        state = {}
        for k, name in enumerate(self.names):
            view = lambda t: self.group.member_view(t, name, i).clone()  # noqa: E731
            if r.optimizer == "adam":
                state[k] = {
                    "step": torch.tensor(float(self.steps[i])),
                    "exp_avg": view(self.exp_avg[k]),
                    "exp_avg_sq": view(self.exp_avg_sq[k]),
                }
            elif r.momentum:
                state[k] = {"momentum_buffer": view(self.momentum_buffer[k])}
        group = {"lr": r.lr, "weight_decay": r.weight_decay, "params": list(range(len(self.names)))}
        if r.optimizer == "adam":
            group.update(betas=(0.9, 0.999), eps=1e-8, amsgrad=False)
        else:
            group.update(momentum=r.momentum, dampening=0, nesterov=False)
        return {"state": state, "param_groups": [group]}


def fused_train_step(
    group: FusedGroup,
    optimizer: FusedOptimizer,
    xs,
    ys,
    lrs: Sequence[float],
    *,
    active: Sequence[bool] | None = None,
    autocast=None,
    before_update=None,
) -> tuple[list[float], list[float]]:
    """One optimiser step of every member on its own batch; per member ``(losses, errors)``."""
    x = xs if isinstance(xs, torch.Tensor) else group.stack_inputs(xs)
    y = ys if isinstance(ys, torch.Tensor) else torch.stack(list(ys), dim=1)
    if autocast is None:
        logits = group(x)
        losses = fused_loss(logits, y)
    else:
        with autocast():
            logits = group(x)
            losses = fused_loss(logits, y)
    optimizer.zero_grad()
    # A diverged member's loss is left out, so its NaN never reaches the others' gradients.
    live = torch.isfinite(losses.detach())
    torch.where(live, losses, torch.zeros_like(losses)).sum().backward()
    if before_update is not None:
        before_update()
    keep = live.tolist() if active is None else [a and bool(f) for a, f in zip(active, live.tolist())]
    optimizer.step(lrs, keep)
    errors = (logits.detach().argmax(2) != y).float().mean(0)
    values = torch.stack([losses.detach(), errors]).tolist()
    return values[0], values[1]
