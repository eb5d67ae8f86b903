// Starts GraphiQL against this page's own URL (/graphql), with the session's CSRF token.
// Written for this project; everything it needs is vendored beside it (no CDN).
(function () {
  "use strict";

  function csrfToken() {
    // The view sets the csrftoken cookie; the form field is a fallback when cookies are HttpOnly.
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) {
      return decodeURIComponent(match[1]);
    }
    var field = document.querySelector("[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  var fetcher = GraphiQL.createFetcher({
    url: window.location.pathname,
    headers: { "X-CSRFToken": csrfToken() },
  });

  ReactDOM.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      defaultQuery: "query {\n  hello\n  totalCustomers\n  totalOrders\n  totalRevenue\n}\n",
    }),
    document.getElementById("graphiql")
  );
})();
