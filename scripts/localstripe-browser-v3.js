/* The Stripe stand-in's Stripe.js (scripts/localstripe_browser.py serves it at /js.stripe.com/v3/): the part
   of Stripe.js's API a card checkout uses, Stripe(publishableKey).elements().create("card") and
   confirmCardPayment(clientSecret, {payment_method: {card}}), talking to the stand-in that served it. Stripe's
   card Element is a frame of its own; this one is plain labelled inputs, so a test can type into them. */
(function () {
  "use strict";
  var base = document.currentScript.src.replace(/\/js\.stripe\.com\/v3\/$/, "");
  var FIELDS = [
    ["number", "Card number", "cc-number", "4242 4242 4242 4242"],
    ["expiry", "Expiry date (MM / YY)", "cc-exp", "MM / YY"],
    ["cvc", "Security code (CVC)", "cc-csc", "123"]
  ];

  function CardElement() {
    this.inputs = {};
    this.listeners = {};
  }
  CardElement.prototype.mount = function (target) {
    var host = typeof target === "string" ? document.querySelector(target) : target;
    var self = this;
    host.classList.add("StripeElement");
    FIELDS.forEach(function (spec) {
      var id = "stand-in-card-" + spec[0];
      var label = document.createElement("label");
      var input = document.createElement("input");
      label.htmlFor = id;
      label.textContent = spec[1];
      input.id = id;
      input.inputMode = "numeric";
      input.autocomplete = spec[2];
      input.placeholder = spec[3];
      input.addEventListener("input", function () { self.emit("change", self.state()); });
      self.inputs[spec[0]] = input;
      host.append(label, input);
    });
  };
  CardElement.prototype.on = function (name, handler) {
    (this.listeners[name] = this.listeners[name] || []).push(handler);
  };
  CardElement.prototype.emit = function (name, event) {
    (this.listeners[name] || []).forEach(function (handler) { handler(event); });
  };
  CardElement.prototype.focus = function () { this.inputs.number.focus(); };
  CardElement.prototype.card = function () {
    var expiry = this.inputs.expiry.value.replace(/\D/g, "");
    return {
      number: this.inputs.number.value.replace(/\D/g, ""),
      exp_month: expiry.slice(0, 2),
      exp_year: expiry.slice(2),
      cvc: this.inputs.cvc.value.trim()
    };
  };
  CardElement.prototype.state = function () {
    var card = this.card();
    var complete = card.number.length === 16 && card.exp_month.length === 2 && card.exp_year.length >= 2 && card.cvc.length === 3;
    return { elementType: "card", complete: complete, empty: !card.number, error: undefined };
  };

  window.Stripe = function (publishableKey) {
    return {
      elements: function () {
        return { create: function () { return new CardElement(); } };
      },
      confirmCardPayment: function (clientSecret, data) {
        var element = data && data.payment_method && data.payment_method.card;
        if (!element || !element.state().complete) {
          return Promise.resolve({ error: { type: "validation_error", code: "incomplete_card", message: "Your card details are incomplete." } });
        }
        var intent = clientSecret.split("_secret_")[0];
        // No Content-Type header: a plain-text body needs no CORS preflight, which the stand-in does not answer.
        return fetch(base + "/_config/browser/payment_intents/" + intent + "/confirm", {
          method: "POST",
          body: JSON.stringify({ key: publishableKey, client_secret: clientSecret, card: element.card() })
        }).then(function (response) {
          return response.json().then(function (body) {
            return response.ok ? { paymentIntent: body } : { error: body.error };
          });
        }, function () {
          return { error: { type: "api_connection_error", message: "We could not reach the payment provider." } };
        });
      }
    };
  };
})();
