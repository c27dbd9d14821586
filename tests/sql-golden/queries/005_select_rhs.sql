-- join table rhs as read
SELECT * FROM rhs
