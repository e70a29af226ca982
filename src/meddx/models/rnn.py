"""Beat classifiers for ECG: a recurrent encoder of the beat window plus the RR intervals.

Every network takes `in_channels`, `num_classes`, `window` (samples per beat) and `n_rr`
(RR features per beat) from the dataset at build time and maps `(beats, rr)` to class
logits, `beats` shaped (N, C, L) and `rr` (N, n_rr). The morphology goes through the
recurrent encoder; the RR features join it only before the head, because in inter-patient
classification the rhythm (a premature beat) is what separates S from N beats, and it is
cheap to give the head directly rather than to make the encoder rediscover it.
"""

from __future__ import annotations

import torch
from torch import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def _cell(name: str) -> type[nn.LSTM] | type[nn.GRU]:
    if name not in CELLS:
        raise ValueError(f"unknown recurrent cell {name!r}; known: {sorted(CELLS)}")
    return CELLS[name]


class BeatClassifier(nn.Module):
    """Head shared by every encoder: [encoded beat, normalised RR] -> MLP -> logits."""

    def __init__(
        self, features: int, num_classes: int, n_rr: int, head_hidden: int, dropout: float
    ) -> None:
        super().__init__()
        # RR features arrive in seconds or ratios, on scales unrelated to the encoder's output.
        self.rr_norm = nn.BatchNorm1d(n_rr) if n_rr else None
        self.head = nn.Sequential(
            nn.Linear(features + n_rr, head_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, num_classes),
        )

    def encode(self, beats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, beats: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        encoded = self.encode(beats)
        if self.rr_norm is not None:
            encoded = torch.cat([encoded, self.rr_norm(rr)], dim=1)
        return self.head(encoded)


class RecurrentBeatNet(BeatClassifier):
    """LSTM or GRU (optionally bidirectional) over the beat window read as a time series.

    `downsample` averages that many samples per step first: a 360 Hz beat of ~250 samples
    becomes ~60 steps, which keeps the recurrence affordable on CPU without losing the QRS.
    The final hidden state of the last layer (both directions) encodes the beat.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        window: int,
        n_rr: int,
        cell: str = "lstm",
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        downsample: int = 4,
        head_hidden: int = 64,
        dropout: float = 0.2,
    ) -> None:
        if window < downsample:
            raise ValueError(f"window {window} is shorter than downsample {downsample}")
        directions = 2 if bidirectional else 1
        super().__init__(hidden * directions, num_classes, n_rr, head_hidden, dropout)
        self.pool = nn.AvgPool1d(downsample) if downsample > 1 else nn.Identity()
        self.rnn = _cell(cell)(
            in_channels,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )

    def encode(self, beats: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(self.pool(beats).transpose(1, 2))
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c)
        directions = 2 if self.rnn.bidirectional else 1
        return h_n[-directions:].transpose(0, 1).flatten(1)


class ConvAttentionBeatNet(BeatClassifier):
    """Conv front-end -> bidirectional recurrent layer -> attention pooling over time.

    The convolutions learn local wave shapes (QRS width, P and T waves) and shorten the
    sequence; attention pooling lets the model weigh the informative part of the beat
    instead of relying on the last hidden state.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        window: int,
        n_rr: int,
        channels: tuple[int, ...] = (16, 32),
        kernel: int = 7,
        cell: str = "gru",
        hidden: int = 32,
        head_hidden: int = 64,
        dropout: float = 0.2,
    ) -> None:
        if window < 2 ** len(channels):
            raise ValueError(f"window {window} is too short for {len(channels)} pooling blocks")
        super().__init__(2 * hidden, num_classes, n_rr, head_hidden, dropout)
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            blocks += [
                nn.Conv1d(previous, width, kernel, padding=kernel // 2),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2),
            ]
            previous = width
        self.conv = nn.Sequential(*blocks)
        self.rnn = _cell(cell)(previous, hidden, batch_first=True, bidirectional=True)
        self.attention = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )

    def encode(self, beats: torch.Tensor) -> torch.Tensor:
        steps, _ = self.rnn(self.conv(beats).transpose(1, 2))  # (N, T, 2H)
        weights = self.attention(steps).softmax(dim=1)  # (N, T, 1)
        return (weights * steps).sum(dim=1)
