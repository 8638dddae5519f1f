"""ViewState geometry and navigation, without Qt."""

from __future__ import annotations

import pytest

from viewer.models.view_state import ViewState


def _state(w=200, h=100) -> ViewState:
    s = ViewState()
    s.set_image_size(w, h)
    return s


def test_fit_centres_and_scales_to_widget():
    s = _state(200, 100)
    assert s.fit_zoom(400, 400) == pytest.approx(2.0)
    assert s.image_to_widget(0, 0, 400, 400) == pytest.approx((0.0, 100.0))
    assert s.image_to_widget(200, 100, 400, 400) == pytest.approx((400.0, 300.0))


def test_round_trip_under_every_orientation():
    s = _state(200, 100)
    s.zoom_by(1.7, 300, 300, anchor=(40, 70))
    s.pan_by(13, -4)
    for rot in range(4):
        for fh in (False, True):
            for fv in (False, True):
                s.rotation, s.flip_h, s.flip_v = rot, fh, fv
                wx, wy = s.image_to_widget(37.5, 81.25, 300, 300)
                assert s.widget_to_image(wx, wy, 300, 300) == pytest.approx((37.5, 81.25))


def test_rotation_is_clockwise_and_flip_is_on_screen():
    s = _state(100, 100)
    s.rotate_cw()
    # the image's top-left corner goes to the screen's top-right corner
    assert s.image_to_widget(0, 0, 100, 100) == pytest.approx((100.0, 0.0))
    s.toggle_flip_h()  # mirror left/right on screen: back to the left
    assert s.image_to_widget(0, 0, 100, 100) == pytest.approx((0.0, 0.0))
    assert s.rotated_size() == (100, 100)
    s2 = _state(200, 50)
    s2.rotate_cw()
    assert s2.rotated_size() == (50, 200)


def test_zoom_keeps_anchor_point_fixed_and_clamps():
    s = _state(200, 100)
    before = s.widget_to_image(50, 60, 400, 400)
    s.zoom_by(3.0, 400, 400, anchor=(50, 60))
    assert not s.fit
    assert s.widget_to_image(50, 60, 400, 400) == pytest.approx(before)
    s.zoom_by(1e6, 400, 400)
    assert s.zoom == 64.0
    with pytest.raises(ValueError):
        s.zoom_by(0, 400, 400)


def test_actual_size_fit_and_reset():
    s = _state(200, 100)
    s.actual_size()
    assert s.zoom_percent(400, 400) == 100
    s.fit_to_window()
    assert s.zoom_percent(400, 400) == 200
    s.rotate_cw()
    s.toggle_flip_v()
    s.toggle_invert()
    s.window = object()
    s.reset()
    assert (s.rotation, s.flip_v, s.invert, s.window, s.fit) == (0, False, False, None, True)


def test_step_walks_frames_then_instances_and_stops_at_ends():
    frames = {0: 1, 1: 3, 2: 1}
    s = ViewState()
    s.set_counts(3, frames[0])
    assert s.step(1, frames.__getitem__) == (1, 0)
    assert s.step(2, frames.__getitem__) == (1, 2)
    assert s.step(1, frames.__getitem__) == (2, 0)
    assert s.at_end()
    assert s.step(5, frames.__getitem__) == (2, 0)
    assert s.step(-1, frames.__getitem__) == (1, 2)
    assert s.step(-10, frames.__getitem__) == (0, 0)


def test_bad_image_size_is_rejected():
    with pytest.raises(ValueError):
        ViewState().set_image_size(0, 10)
