import pytest

from conftest import screenshot


@pytest.mark.browser
def test_home_page_renders_and_routes(page, app_url):
    page.goto(app_url)
    page.get_by_text("y = F(x) + x").first.wait_for()
    assert page.get_by_text("Running on").first.is_visible()
    for title in ("Explain", "Gradient flow", "Residual vs identity", "Training race"):
        assert page.get_by_role("link", name=title).first.is_visible()
    page.wait_for_timeout(1500)
    screenshot(page, "home")
