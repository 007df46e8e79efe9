"""A mentor's free slots as learners see them: the read side of bookings.

`scheduling.slots` computes slots from rules and busy ranges (pure); `service` reads those inputs and
answers a listing, `routes` serves it (cached per process under the mentor's calendar version).
"""
