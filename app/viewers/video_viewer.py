"""Video viewer: play/pause, frame slider, frame rate, step frame by frame.

The frames (``T H W`` or ``T H W 3``) are wrapped once as a vtkImageData stack and shown one slice at a time,
so stepping costs no copy. Keys: Space = play/pause, Left/Right = previous/next frame, Home/End = first/last.
A video Case read for indexing holds sampled frames (``ReadLimits.video_frames``); the app re-reads it with a
bigger budget in a worker (``VIEWER_VIDEO_FRAMES``) before showing it here.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from engine.io.case import Case
from app.viewers.base import CaseViewer, format_value
from app.viewers.canvas import to_image_data
from app.viewers.slice_view import AXIAL, SliceView
from app.window_level import Window, auto_window

log = logging.getLogger(__name__)

VIEWER_VIDEO_FRAMES = 600  # frames read for viewing (sampled uniformly beyond that)
DEFAULT_FPS = 25.0


class VideoViewer(CaseViewer):
    """Shows a ``video`` case with playback controls."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = SliceView(AXIAL, left_drag="window", parent=self)
        self.view.label = "Frame"
        style = self.style()
        self.play_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "", self)
        self.play_button.setToolTip("Play / pause (Space)")
        self.prev_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekBackward), "", self)
        self.prev_button.setToolTip("Previous frame (Left)")
        self.next_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward), "", self)
        self.next_button.setToolTip("Next frame (Right)")
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setMinimum(0)
        self.fps_box = QDoubleSpinBox(self)
        self.fps_box.setRange(0.5, 240.0)
        self.fps_box.setDecimals(1)
        self.fps_box.setSuffix(" fps")
        self.fps_box.setValue(DEFAULT_FPS)
        self.frame_label = QLabel("", self)
        self.readout = QLabel("", self)
        self.timer = QTimer(self)

        controls = QHBoxLayout()
        for widget in (self.prev_button, self.play_button, self.next_button):
            controls.addWidget(widget)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.frame_label)
        controls.addWidget(self.fps_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.view, 1)
        layout.addLayout(controls)
        layout.addWidget(self.readout)

        self.play_button.clicked.connect(self.toggle_play)
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        self.slider.valueChanged.connect(self.set_frame)
        self.fps_box.valueChanged.connect(self._apply_fps)
        self.timer.timeout.connect(self._advance)
        self.view.keyPressed.connect(self._on_key)
        self.view.windowChanged.connect(self.windowChanged)
        self.view.hovered.connect(self._show_readout)

    def set_case(self, case: Case) -> None:
        self.pause()
        self.case = case
        pixels = case.pixels  # T H W [3]
        spacing = case.spacing[-2:] if len(case.spacing) >= 2 else (1.0, 1.0)
        image = to_image_data(pixels, (spacing[1], spacing[0], 1.0), color=case.is_color)
        window = Window(127.5, 255.0) if case.is_color else auto_window(pixels)
        self.view.set_image(image, pixels, window, data_range=auto_window(pixels, (0.0, 100.0)).width)
        self.slider.blockSignals(True)
        self.slider.setMaximum(self.frame_count - 1)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.fps_box.setValue(self.playback_fps(case))
        self.set_frame(0)
        self.readout.setText(_describe(case))

    @staticmethod
    def playback_fps(case: Case) -> float:
        """Frames per second that play the held frames in real time (fewer when the clip was subsampled)."""
        fps = case.fps or DEFAULT_FPS
        held = case.pixels.shape[0]
        if case.frame_count and case.frame_count > held:
            fps *= held / case.frame_count
        return float(np.clip(fps, 0.5, 240.0))

    @property
    def frame_count(self) -> int:
        return int(self.case.pixels.shape[0]) if self.case is not None else 0

    @property
    def frame(self) -> int:
        return self.view.slice_index

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def set_frame(self, index: int) -> None:
        """Show held frame ``index`` (clamped)."""
        if self.case is None:
            return
        index = int(np.clip(index, 0, self.frame_count - 1))
        self.view.set_slice(index, emit=False)
        self.view.render_now()  # picture and frame label change together (a deferred render lagged a frame)
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        source = self.case.frame_indices
        text = f"{index + 1}/{self.frame_count}"
        if source is not None and len(source) == self.frame_count and self.case.frame_count:
            text += f" (frame {int(source[index]) + 1} of {self.case.frame_count})"
        self.frame_label.setText(text)

    def step(self, delta: int) -> None:
        """Pause and move ``delta`` frames."""
        self.pause()
        self.set_frame(self.frame + delta)

    def play(self) -> None:
        if self.case is None or self.frame_count < 2:
            return
        self._apply_fps(self.fps_box.value())
        self.timer.start()
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPause))

    def pause(self) -> None:
        self.timer.stop()
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def _apply_fps(self, fps: float) -> None:
        self.timer.setInterval(max(1, int(round(1000.0 / max(fps, 0.5)))))

    def _advance(self) -> None:
        self.set_frame((self.frame + 1) % max(self.frame_count, 1))

    def _on_key(self, key: int, modifiers: object) -> None:
        if key == Qt.Key.Key_Space:
            self.toggle_play()
        elif key == Qt.Key.Key_Left:
            self.step(-1)
        elif key == Qt.Key.Key_Right:
            self.step(1)
        elif key == Qt.Key.Key_Home:
            self.step(-self.frame_count)
        elif key == Qt.Key.Key_End:
            self.step(self.frame_count)
        elif key == Qt.Key.Key_F:
            self.view.fit()

    @property
    def supports_window(self) -> bool:
        return self.case is not None and not self.case.is_color

    def window(self) -> Window | None:
        return self.view.window if self.case is not None else None

    def set_window(self, window: Window, emit: bool = False) -> None:
        self.view.set_window(window, emit=emit)

    def capture(self) -> np.ndarray:
        return self.view.grab_rgb()

    def shutdown(self) -> None:
        self.pause()

    def _show_readout(self, ijk: tuple[int, int, int] | None, value: object) -> None:
        if ijk is None:
            return
        self.readout.setText(f"x {ijk[0]}  y {ijk[1]}  value {format_value(value)}")


def _describe(case: Case) -> str:
    t, h, w = case.pixels.shape[:3]
    fps = f"{case.fps:.1f} fps" if case.fps else "fps unknown"
    return f"{case.modality} video {t}x{h}x{w} (frames x rows x columns), {t} frames held of {case.frame_count or t}, {fps}"
