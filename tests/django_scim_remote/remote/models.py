"""Concrete models for django-scim2's abstract SCIM mixins."""
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager
from django.db import models
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin


class Group(AbstractSCIMGroupMixin):
    name = models.CharField(max_length=254, unique=True)


class User(AbstractSCIMUserMixin, AbstractBaseUser):
    username = models.CharField(max_length=254, unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(auto_now_add=True)
    groups = models.ManyToManyField(Group, related_name="user_set", blank=True)

    USERNAME_FIELD = "username"
    objects = BaseUserManager()

    @property
    def scim_groups(self):
        return self.groups
