/* The sign-in page: posts JSON to /auth/login, keeps the CSRF token, goes on to the
 * page asked for (only pages of this site). */
(function () {
  "use strict";
  const { t, apply, bindSwitch } = window.SoiI18n;

  function nextPage() {
    const next = new URLSearchParams(window.location.search).get("next") || "";
    // A page of this site, with the query of a shared link (the audit log's filters).
    const page = /^\/ui\/[A-Za-z0-9/_-]*(\?[A-Za-z0-9._~%&=+-]*)?$/.test(next) ? next : "";
    return page && !page.startsWith("/ui/login") ? page : "/ui/upload";
  }

  function show(text) {
    const message = document.getElementById("signin-message");
    message.textContent = text;
    message.hidden = !text;
  }

  document.addEventListener("DOMContentLoaded", () => {
    apply();
    bindSwitch();
    if (new URLSearchParams(window.location.search).get("reason") === "expired") {
      show(t("login.expired"));
    }
    const form = document.getElementById("signin");
    const submit = document.getElementById("signin-submit");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      show("");
      submit.disabled = true;
      submit.textContent = t("login.busy");
      try {
        const reply = await window.SoiApi.post("/auth/login", {
          username: form.username.value.trim(),
          password: form.password.value,
        });
        window.sessionStorage.setItem("soi.csrf", reply.csrf_token);
        window.location.assign(nextPage());
      } catch (error) {
        if (error.status === 401) show(t("login.failed"));
        else if (error.status === 429) {
          const detail = String(error.problem.detail || "");
          const seconds = (detail.match(/(\d+)\s*s/) || [])[1] || "60";
          show(t("login.tooMany", { seconds }));
        } else if (error instanceof window.SoiApi.ApiError) {
          show(t("login.error", { detail: error.message }));
        } else show(t("error.network"));
        form.password.value = "";
        form.password.focus();
      } finally {
        submit.disabled = false;
        submit.textContent = t("login.submit");
      }
    });
  });
})();
