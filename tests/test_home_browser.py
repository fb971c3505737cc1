import pytest
from conftest import running_app, screenshot


@pytest.mark.browser
def test_home_page_renders_and_routes(page, app_url):
    page.goto(app_url)
    page.get_by_text("y = F(x) + x").first.wait_for()
    assert page.get_by_text("Running on").first.is_visible()
    for title in ("Explain", "Gradient flow", "Residual vs identity", "Training race"):
        assert page.get_by_role("link", name=title).first.is_visible()
    page.wait_for_timeout(1500)
    screenshot(page, "home")


@pytest.mark.browser
def test_a_deep_link_on_a_fresh_server_goes_through_the_router(page):
    """Streamlit's old pages/ mode must not bypass app.py, even for the very first request."""
    with running_app() as url:
        page.goto(url + "/gradient_flow?preset=vanishing")
        page.get_by_role("heading", name="Gradient flow").wait_for()
        page.get_by_text("Running on").first.wait_for()  # the shared sidebar from app.py
        nav = page.locator("[data-testid=stSidebarNav] a").all_inner_texts()
        assert not any(t.strip() in ("app", "common") for t in nav)
        assert page.get_by_role("radio", name="Vanishing gradients").is_checked()
