/* Booking pages, progressively enhanced. Free-time links carry the visitor's zone; "N minutes left" counts
   down; the checkout form pays with Stripe.js (the card Element, then confirmCardPayment with the hold's client
   secret and the publishable key), asking the API for a fresh PaymentIntent before another card is tried; the
   status page follows the booking through the API until the payment is settled, and shows it again. */
(function () {
  "use strict";
  var zone = document.body.dataset.tz || Intl.DateTimeFormat().resolvedOptions().timeZone;

  document.querySelectorAll("a[data-add-zone]").forEach(function (link) {
    var url = new URL(link.href);
    if (zone && !url.searchParams.has("tz")) {
      url.searchParams.set("tz", zone);
      link.href = url.pathname + url.search;
    }
  });

  function minutesLeft(until) {
    var minutes = Math.max(0, Math.floor((new Date(until) - Date.now()) / 60000));
    return minutes === 1 ? "1 minute" : minutes + " minutes";
  }
  function countDown() {
    document.querySelectorAll("[data-minutes-until]").forEach(function (el) {
      el.textContent = minutesLeft(el.dataset.minutesUntil);
    });
  }
  countDown();
  setInterval(countDown, 15000);

  var followed = document.getElementById("booking-status");
  var LIVE = ["pending_payment", "awaiting_mentor"];
  if (followed && LIVE.indexOf(followed.dataset.status) >= 0) {
    var stopAt = Date.now() + 20 * 60000;
    var follow = function () {
      fetch(followed.dataset.followUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (booking) {
          var error = booking && booking.payment ? booking.payment.last_error || "" : "";
          if (booking && (booking.status !== followed.dataset.status || error !== followed.dataset.lastError)) {
            window.location.reload();
          } else if (Date.now() < stopAt) {
            setTimeout(follow, 1000);
          }
        }, function () { if (Date.now() < stopAt) setTimeout(follow, 3000); });
    };
    setTimeout(follow, 1000);
  }

  var form = document.getElementById("checkout");
  if (!form) return;
  var message = document.getElementById("payment-message");
  var tryAgain = document.getElementById("try-again");
  var button = document.getElementById("pay");
  if (typeof window.Stripe !== "function") {
    message.textContent = "The card form could not be loaded. Please reload the page to try again.";
    button.disabled = true;
    return;
  }
  var stripe = window.Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var secret = form.dataset.clientSecret;
  var renew = false;

  function freshSecret() {
    var headers = { Accept: "application/json" };
    headers[form.dataset.csrfHeader] = form.dataset.csrfToken;
    return fetch(form.dataset.renewUrl, { method: "POST", credentials: "same-origin", headers: headers })
      .then(function (response) {
        if (response.status === 409) window.location.assign(form.dataset.doneUrl);
        if (!response.ok) throw new Error("We could not start a new payment. Please reload the page.");
        return response.json();
      })
      .then(function (booking) { return booking.payment.client_secret; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    message.textContent = "";
    tryAgain.hidden = true;
    (renew ? freshSecret() : Promise.resolve(secret))
      .then(function (current) {
        secret = current;
        renew = false;
        return stripe.confirmCardPayment(secret, { payment_method: { card: card } });
      })
      .then(function (result) {
        if (!result.error) {
          window.location.assign(form.dataset.doneUrl);
          return;
        }
        // A card the bank refused spent this PaymentIntent's attempt: the next card gets a fresh one.
        renew = result.error.type !== "validation_error";
        message.textContent = result.error.message || "The payment did not go through.";
        tryAgain.hidden = !renew;
        button.disabled = false;
        if (card.focus) card.focus();
      })
      .catch(function (error) {
        message.textContent = error.message;
        button.disabled = false;
      });
  });
})();
