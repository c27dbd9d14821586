-- correlated EXISTS
SELECT l.id, l.k FROM lhs l WHERE EXISTS (SELECT 1 FROM rhs r WHERE r.k = l.k)
