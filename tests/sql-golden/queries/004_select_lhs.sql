-- join table lhs as read
SELECT * FROM lhs
